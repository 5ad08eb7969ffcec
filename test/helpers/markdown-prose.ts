// What of a Markdown text CommonMark reads as Markdown and inline HTML: the tests of the export README use it to show
// that user text (a file name, a base model's name, a hyperparameter) stays inside its code span or code block.

/**
 * The lines outside fenced code blocks, with their code spans taken out. Line endings are CommonMark's (\n, \r\n and a
 * lone \r); a fence opens with 3+ backticks (no backtick after them) and closes on a line of at least as many backticks
 * alone; a code span closes at the next run of exactly as many backticks on its line.
 */
export function proseOutsideCode(md: string): string[] {
  const prose: string[] = [];
  let fence: string | null = null;
  for (const line of md.split(/\r\n|\r|\n/)) {
    const run = /^ {0,3}(`{3,})([^`]*)$/.exec(line);
    if (fence === null) {
      if (run) fence = run[1];
      else prose.push(line.replace(/(?<!`)(`+)(?!`)[\s\S]*?(?<!`)\1(?!`)/g, ''));
    } else if (run && run[1].length >= fence.length && run[2].trim() === '') {
      fence = null;
    }
  }
  return prose;
}
