// The audible cue for critical alerts and new dispatches: a short tone pattern synthesised with the
// Web Audio API (no sound file to fetch). Browsers only let a page make sound after the user has
// interacted with it, so the audio context is created on the first click or key press.

export class Cue {
  /** How many cues were sounded (or would have been, when muted or not yet allowed). */
  count = 0;
  muted = false;
  private context: AudioContext | null = null;

  constructor() {
    const unlock = (): void => {
      if (!this.context) {
        try {
          this.context = new AudioContext();
        } catch {
          this.context = null;
        }
      }
      void this.context?.resume().catch(() => undefined);
    };
    window.addEventListener("pointerdown", unlock, { capture: true });
    window.addEventListener("keydown", unlock, { capture: true });
  }

  get audible(): boolean {
    return !this.muted && this.context !== null && this.context.state === "running";
  }

  /** Play `pattern` (pairs of [frequency Hz, duration s]). */
  play(pattern: [number, number][] = [
    [880, 0.16],
    [0, 0.06],
    [660, 0.16],
    [0, 0.06],
    [880, 0.22],
  ]): void {
    this.count += 1;
    document.documentElement.dataset.cues = String(this.count);
    const context = this.context;
    if (this.muted || !context || context.state !== "running") return;
    let at = context.currentTime + 0.02;
    for (const [frequency, length] of pattern) {
      if (frequency > 0) {
        const oscillator = context.createOscillator();
        const gain = context.createGain();
        oscillator.type = "square";
        oscillator.frequency.value = frequency;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.12, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
        oscillator.connect(gain).connect(context.destination);
        oscillator.start(at);
        oscillator.stop(at + length + 0.02);
      }
      at += length;
    }
  }
}
