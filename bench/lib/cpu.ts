import { readFileSync } from 'node:fs';

// CPU time a process used so far (user + system, Linux /proc), to tell what a figure costs from
// what the machine's other processes took: on two cores the bridge shares them with the broker,
// the publisher and the receivers.

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux the suite runs on (getconf CLK_TCK)

/** Seconds of CPU `pid` used (user + system), at 10 ms resolution; NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // after the command's closing parenthesis: field 3 (state) on; utime and stime are fields 14 and 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
