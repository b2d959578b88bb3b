/*-------------------------------------------------------------------------
 *
 * progress.c
 *		What a long scan is doing: NOTICE progress lines (GUC
 *		epic_fdw.progress, at most every epic_fdw.progress_interval ms).
 *
 * connection.c reports each finished request with its scan's counters
 * (epic_progress_request); http.c's wait loop reports how many transfers are
 * in flight (epic_progress_waiting).  The counters are copied here, so no
 * pointer into a scan outlives it; a transaction's end forgets them.  A
 * bulk export adds its own text (the server's X-Progress) with
 * epic_progress_set_extra.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/timestamp.h"

bool		epic_progress = false;
int			epic_progress_interval = 10000;

static struct
{
	bool		active;			/* a scan has reported since the last reset */
	TimestampTz last;			/* last NOTICE (or the first report) */
	char		table[2 * NAMEDATALEN];
	int64		requests;
	int64		pages;
	int64		resources;
	int64		bytes;
	int			inflight;
	char		extra[256];		/* e.g. a bulk export's X-Progress */
}			prog;

void
epic_progress_define_gucs(void)
{
	DefineCustomBoolVariable("epic_fdw.progress",
							 "Reports the progress of long scans as NOTICE messages.",
							 "Pages, resources, bytes and requests in flight, at most every "
							 "epic_fdw.progress_interval milliseconds.",
							 &epic_progress, false, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("epic_fdw.progress_interval",
							"Minimum time between two progress NOTICEs.",
							NULL, &epic_progress_interval, 10000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

static void
maybe_report(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!prog.active)
	{
		/* the first report of a scan starts the clock */
		prog.active = true;
		prog.last = now;
		return;
	}
	if (!TimestampDifferenceExceeds(prog.last, now, epic_progress_interval))
		return;
	prog.last = now;
	ereport(NOTICE,
			(errmsg("epic_fdw progress: %s: " INT64_FORMAT " requests, " INT64_FORMAT
					" pages, " INT64_FORMAT " resources, " INT64_FORMAT " bytes, %d in flight%s%s",
					prog.table[0] ? prog.table : "(no table)",
					prog.requests, prog.pages, prog.resources, prog.bytes, prog.inflight,
					prog.extra[0] ? "; " : "", prog.extra),
			 errhidestmt(true)));
}

/* A request of a scan finished: its counters so far. */
void
epic_progress_request(const EpicScanStats *stats)
{
	if (!epic_progress || stats == NULL)
		return;
	strlcpy(prog.table, stats->table ? stats->table : "", sizeof(prog.table));
	prog.requests = stats->requests;
	prog.pages = stats->pages;
	prog.resources = stats->resources;
	prog.bytes = stats->bytes;
	maybe_report();
}

/* Waiting on the network with n transfers in flight. */
void
epic_progress_waiting(int inflight)
{
	if (!epic_progress)
		return;
	prog.inflight = inflight;
	/* nothing to say before a scan's first request finished (discovery, token) */
	if (prog.table[0] == '\0')
		return;
	maybe_report();
}

/* Extra text for the next NOTICEs (NULL clears it). */
void
epic_progress_set_extra(const char *text)
{
	strlcpy(prog.extra, text ? text : "", sizeof(prog.extra));
}

/* The transaction ended: the next scan starts afresh. */
void
epic_progress_reset(void)
{
	memset(&prog, 0, sizeof(prog));
}
