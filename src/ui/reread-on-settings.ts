// When the dataset panel reads its files again: layout and max_seq_len change what a row becomes, so the files are
// read again once those settle (debounced while typing) on a valid value other than the one the shown figures were
// read with. Compared with what was read, not with the form's last value: typing 40960 over 256 passed through 4096,
// whose pending re-read then ran with the invalid 40960, and Backspace back to 4096 looked like no change, so the
// panel kept saying "max_seq_len 40,960" while the form said 4096.

export class RereadOnSettings {
  private readWith = '';
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly reread: () => void,
    private readonly delayMs = 400,
  ) {}

  /** The files were (or are being) read with these settings. */
  readWithKey(key: string): void {
    this.readWith = key;
  }

  /** The form changed: `key` is its settings, or null while it is invalid (nothing is read with an invalid value). */
  formChanged(key: string | null): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (key === null || this.readWith === '' || key === this.readWith) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reread();
    }, this.delayMs);
  }
}
