-- KEK rotation (issue 14): the active's keytrusteed re-wraps data keys from a retiring KEK to
-- the active one in the background (the data key itself, and so every deposit sealed with it,
-- stays the same), then marks the retiring KEK retired.
grant update (kek_id, wrapped) on data_keys to keytrustee_app;
grant update (state, retired_at) on hsm_keks to keytrustee_app;
