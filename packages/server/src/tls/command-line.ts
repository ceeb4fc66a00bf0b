export class CommandLineError extends Error {
  override name = 'CommandLineError';
}

/**
 * Splits a command line such as the seed's `/bin/echo -n password` into argv, without a shell:
 * words are separated by whitespace; '…' keeps everything literally, "…" keeps spaces and
 * understands \" and \\; outside quotes a backslash keeps the next character. Nothing else is
 * interpreted (no variables, globs, pipes or redirections).
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new CommandLineError('unterminated single quote');
      word += line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) j++;
        word += line[j];
      }
      if (j >= line.length) throw new CommandLineError('unterminated double quote');
      i = j;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new CommandLineError('trailing backslash');
      word += line[++i];
    } else {
      word += c;
    }
  }
  if (inWord) words.push(word);
  if (words.length === 0) throw new CommandLineError('empty command');
  return words;
}
