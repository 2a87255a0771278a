import type { Proc } from './procs.js';

/** One figure of a run, side by side with the limit of the stack measured in the same run. */
export interface Result {
  scenario: string;
  metric: string;
  unit: string;
  /** The bridge's figure (median of the runs). */
  bridge: number;
  /** The baseline's figure (median of the runs), or null where there is none to compare with. */
  baseline: number | null;
  /** bridge / baseline. */
  ratio: number | null;
  /** SPEC §10's goal for this figure, in words. */
  goal: string;
  /** Whether the goal is met; null where the figure has no goal of its own. */
  met: boolean | null;
  /** Extra figures (lost messages, every run's value, …). */
  details?: Record<string, unknown>;
}

export interface Context {
  /** --quick: a tenth of the size. */
  quick: boolean;
  /** Runs per figure (3; 1 with --quick). */
  runs: number;
  /** A fresh broker per scenario, stopped after it. */
  broker(): Promise<Proc & { url: string }>;
  log(message: string): void;
  /** Scales a size for --quick. */
  size(full: number): number;
}

export interface Scenario {
  name: string;
  description: string;
  run(ctx: Context): Promise<Result[]>;
}
