#!/usr/bin/env node
require('../dist/cli/keytrusteed.js');
