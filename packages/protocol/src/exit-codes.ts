/**
 * Exit codes of `livegraft-agent check` and `status`, the same meanings as
 * KernelCare's `kcarectl --status`, so existing monitoring keeps working.
 */
export const StatusExit = {
  UP_TO_DATE: 0,
  NO_PATCH_APPLIED: 1,
  UPDATE_AVAILABLE: 2,
  KERNEL_UNSUPPORTED: 3,
  /** Anything else: server unreachable, bad config, refused module. */
  ERROR: 4,
  /** A mutating command is running elsewhere. */
  BUSY: 5,
  /** Bad command line. */
  USAGE: 64,
} as const;
