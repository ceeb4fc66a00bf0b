#!/usr/bin/env node
'use strict';
require('../dist/cli/ktclient.js');
