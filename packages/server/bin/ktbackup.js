#!/usr/bin/env node
require('../dist/cli/ktbackup.js');
