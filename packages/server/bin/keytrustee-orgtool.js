#!/usr/bin/env node
require('../dist/cli/keytrustee-orgtool.js');
