/*-------------------------------------------------------------------------
 *
 * bulk.h
 *		FHIR Bulk Data export as the source of a bulk table's resources
 *		(bulk.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_BULK_H
#define EPIC_BULK_H

#include "epic_fdw.h"

typedef struct EpicBulkJob EpicBulkJob;

/* What epic_fdw_last_export(regclass) returns: one per table, per session. */
typedef struct EpicBulkExport
{
	Oid			relid;			/* hash key */
	MemoryContext cxt;			/* holds request and deleted */
	TimestampTz transaction_time;
	char	   *request;
	int			files;
	int64		resources;
	int			errors;
	int			ndeleted;
	char	  **deleted;
} EpicBulkExport;

extern EpicBulkJob *epic_bulk_begin(EpicConnection *conn, UserMapping *um, EpicTable *t,
									const char *request, EpicScanStats *stats);
extern EpicPage *epic_bulk_next_page(EpicBulkJob *job);
extern void epic_bulk_rewind(EpicBulkJob *job);
extern void epic_bulk_end(EpicBulkJob *job);
extern int	epic_bulk_files(EpicBulkJob *job);
extern char *epic_bulk_request(const char *group, const char *resource, const char *since);
extern char *epic_bulk_since_text(TimestampTz ts, bool strict);

#endif							/* EPIC_BULK_H */
