// What gzip saved on the quota's egress count. mfs_api.call charges a reply's uncompressed
// size before this router compresses it; the router remembers, per process, the bytes it
// saved since (uncompressed - compressed, with the UTC month of those replies) and hands them
// to its next call as the argument `_egress_saved` = "YYYY-MM:bytes", which that call takes off
// its own count (sql/0031_text_replies.sql). The month's egress is then the bytes actually
// sent, give or take the one saving not yet handed over: always an over-count, the safe side.

export const EGRESS_SAVED_ARG = "_egress_saved";

export class EgressSavings {
  private month = "";
  private bytes = 0;

  constructor(private readonly now: () => Date = () => new Date()) {}

  /** A reply charged at `charged` bytes went out as `sent` bytes. */
  add(charged: number, sent: number): void {
    const month = this.now().toISOString().slice(0, 7);
    if (month !== this.month) {
      // the database ignores a saving of another month than its own: start the new month's
      this.month = month;
      this.bytes = 0;
    }
    this.bytes += charged - sent;
  }

  /** The argument for the next call, which now owns the saving; null when there is none. */
  take(): string | null {
    if (this.bytes === 0) return null;
    const arg = `${this.month}:${this.bytes}`;
    this.bytes = 0;
    return arg;
  }

  /** A call that was refused by the quota counted nothing: its saving waits for the next one.
   * (A call that failed may or may not have committed: its saving is dropped, an over-count.) */
  giveBack(arg: string): void {
    const [month, bytes] = arg.split(":");
    if (month === this.month) this.bytes += Number(bytes);
  }
}
