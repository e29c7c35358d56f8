import type { MaintenanceWindow, Weekday } from '@livegraft/protocol';

const DAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MINUTES_PER_DAY = 24 * 60;

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/**
 * Whether `now` falls in one of the weekly windows (UTC). No windows means
 * always open. A window whose end is not after its start runs past midnight
 * (start = end is a whole day); it belongs to the day it starts on.
 */
export function inMaintenanceWindow(windows: readonly MaintenanceWindow[], now: Date): boolean {
  if (windows.length === 0) return true;
  const day = now.getUTCDay();
  const minute = now.getUTCHours() * 60 + now.getUTCMinutes();
  const today = DAYS[day] as Weekday;
  const yesterday = DAYS[(day + 6) % 7] as Weekday;
  return windows.some((w) => {
    const start = minutes(w.start);
    const end = minutes(w.end);
    if (start < end) return w.days.includes(today) && minute >= start && minute < end;
    const wrapEnd = end === start ? start + MINUTES_PER_DAY : end + MINUTES_PER_DAY;
    return (
      (w.days.includes(today) && minute >= start) ||
      (w.days.includes(yesterday) && minute + MINUTES_PER_DAY < wrapEnd && minute + MINUTES_PER_DAY >= start)
    );
  });
}
