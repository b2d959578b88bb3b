/*-------------------------------------------------------------------------
 *
 * fhir_types.c
 *		Lookups in the generated FHIR type table (see fhir_types.h).
 *
 *-------------------------------------------------------------------------
 */
#include "fhir_types.h"

#include <string.h>

/*
 * The entry of table for "key[.name]" in versions: R4's when both match (the
 * table is sorted by path; entries of one path differ in type).
 */
static const EpicFhirPathType *
lookup(const EpicFhirPathType *table, int n, const char *key, size_t klen,
	   const char *name, size_t nlen, int versions)
{
	char		want[256];
	int			lo = 0,
				hi = n - 1,
				first = -1;
	const EpicFhirPathType *best = NULL;

	if (klen + nlen + 2 > sizeof(want))
		return NULL;
	memcpy(want, key, klen);
	want[klen] = '\0';
	if (name != NULL)
	{
		want[klen] = '.';
		memcpy(want + klen + 1, name, nlen);
		want[klen + 1 + nlen] = '\0';
	}
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strcmp(want, table[mid].path);

		if (c == 0)
		{
			first = mid;
			hi = mid - 1;
		}
		else if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	for (int i = first; i >= 0 && i < n && strcmp(want, table[i].path) == 0; i++)
		if ((table[i].versions & versions) != 0 &&
			(best == NULL || (table[i].versions & EPIC_FHIR_R4)))
			best = &table[i];
	return best;
}

const char *
epic_fhir_element_type(const char *parent, const char *name, size_t namelen, int versions)
{
	const EpicFhirPathType *e;

	if (namelen == 9 && memcmp(name, "extension", 9) == 0)
		return "Extension";
	if (namelen == 17 && memcmp(name, "modifierExtension", 17) == 0)
		return "Extension";
	if (parent == NULL)
		return NULL;
	for (int depth = 0; parent != NULL && depth < 8; depth++)
	{
		e = lookup(epic_fhir_paths, epic_fhir_npaths, parent, strlen(parent), name, namelen,
				   versions);
		if (e != NULL)
			return e->type[0] == '\0' ? e->path : e->type;
		/* elements inherited from the parent type (Resource.id, Element.id...) */
		if (strchr(parent, '.') != NULL)
			parent = (namelen == 2 && memcmp(name, "id", 2) == 0) ? "Element" : NULL;
		else
			parent = epic_fhir_parent_type(parent, versions);
	}
	return NULL;
}

bool
epic_fhir_is_choice(const char *parent, const char *name, size_t namelen, int versions)
{
	return parent != NULL &&
		lookup(epic_fhir_choices, epic_fhir_nchoices, parent, strlen(parent), name, namelen,
			   versions) != NULL;
}

const char *
epic_fhir_parent_type(const char *type, int versions)
{
	const EpicFhirPathType *e;

	if (type == NULL)
		return NULL;
	e = lookup(epic_fhir_parents, epic_fhir_nparents, type, strlen(type), NULL, 0, versions);
	return e ? e->type : NULL;
}

const char *
epic_fhir_type_name(const char *name, size_t len, int versions)
{
	const EpicFhirPathType *e = lookup(epic_fhir_parents, epic_fhir_nparents, name, len, NULL, 0,
									   versions);

	return e ? e->path : NULL;
}

bool
epic_fhir_type_known(const char *type, int versions)
{
	/* every element has an id: Patient.id, HumanName.id, Patient.contact.id */
	return epic_fhir_element_type(type, "id", 2, versions) != NULL;
}

bool
epic_fhir_type_is(const char *type, const char *want, int versions)
{
	for (int depth = 0; type != NULL && depth < 8; depth++)
	{
		if (strcmp(type, want) == 0)
			return true;
		type = epic_fhir_parent_type(type, versions);
	}
	return false;
}
