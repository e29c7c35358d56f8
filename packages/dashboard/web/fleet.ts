/**
 * How the dashboard buckets hosts: the same rules the server's overview
 * counts with (protocol's dashboard-rules), so a tile and the list it links
 * to always agree.
 */
export {
  countHostStatuses as countStatuses,
  HOST_STATUS_HELP as STATUS_HELP,
  HOST_STATUS_LABEL as STATUS_LABEL,
  HOST_STATUSES,
  hostStatus,
  STALE_AFTER_CHECKINS,
  type HostStatus,
} from '@livegraft/protocol/dashboard-rules';
