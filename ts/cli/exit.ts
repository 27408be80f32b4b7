/** The exit codes of the `bia` command line, shared by its commands. */

/** Errors that mean "your input is bad" (exit 3: a bad file or option, a device this machine lacks), as opposed to a failure of the program (exit 1). */
export const INPUT_ERRORS: ReadonlySet<string> = new Set<string>(['BIA_INVALID_ARGUMENT', 'BIA_DEVICE_UNAVAILABLE', 'BIA_IO_ERROR', 'BIA_CHECKPOINT_ERROR', 'BIA_CHECKPOINT_MISMATCH', 'BIA_IMAGE_ERROR', 'BIA_IMAGE_TOO_LARGE']);

/** Exit codes: 0 success, 1 failure, 2 usage error, 3 input error, 4 bench regression, 130 interrupted (SIGINT). */
export const EXIT = { ok: 0, failure: 1, usage: 2, input: 3, regression: 4, interrupted: 130 } as const;
