/** Reported to the server on enrol and every check-in. */
export const AGENT_VERSION = '0.1.0';
