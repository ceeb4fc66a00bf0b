/** Entry point of the `ktclient` bin: thin, all behaviour is in run-cli.ts. */
import { runCli } from './run-cli';

runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  stdin: process.stdin,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`error: INTERNAL: ${String(e)}\n`);
    process.exitCode = 1;
  },
);
