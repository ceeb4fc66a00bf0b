#!/usr/bin/env node
require('../dist/cli/ktadmin.js');
