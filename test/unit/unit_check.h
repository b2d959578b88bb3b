/*
 * unit_check.h - the TAP-like bookkeeping the unit tests under test/unit
 * share: check() prints "ok N - what" or "not ok N - what", and
 * unit_summary() the closing "N passed, N failed" (scripts/test.sh counts
 * it) and gives the exit status.  Included by one .c file per program.
 */
#ifndef EPIC_UNIT_CHECK_H
#define EPIC_UNIT_CHECK_H

#include <stdio.h>

static int	passed,
			failed;

static void
check(int cond, const char *what)
{
	if (cond)
		passed++;
	else
		failed++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", passed + failed, what);
}

static int
unit_summary(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif							/* EPIC_UNIT_CHECK_H */
