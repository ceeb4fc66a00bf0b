#!/usr/bin/env node
require('../dist/cli/keyhsm.js');
