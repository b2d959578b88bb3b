# epic_fdw — PostgreSQL foreign data wrapper for Epic / FHIR servers (PGXS build)

MODULE_big = epic_fdw
OBJS = epic_fdw.o \
	src/options.o src/catalog.o src/deparse.o src/connection.o \
	src/http.o src/auth.o src/bundle.o src/fhirpath.o src/fhir_types.o src/fhir_types_data.o src/json_jansson.o \
	src/convert.o src/functions.o src/bulk.o src/viewdef.o src/json_page.o src/scan.o src/import.o src/progress.o src/builtin_views.o

EXTENSION = epic_fdw
DATA = epic_fdw--0.1.sql epic_fdw--0.1--0.2.sql epic_fdw--0.2--0.3.sql
PGFILEDESC = "epic_fdw - foreign data wrapper for FHIR servers (Epic)"

REGRESS = options auth scan paging pushdown planning joins dataset equivalence memory faults golive errors security views clinical concurrency cohorts hardening visibility bulk bulk_memory bulk_cron
REGRESS_OPTS = --load-extension=epic_fdw

PG_CONFIG ?= $(shell command -v pg_config >/dev/null 2>&1 && echo pg_config || echo /usr/lib/postgresql/15/bin/pg_config)

PKG_LIBS = libcurl jansson libcrypto
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags $(PKG_LIBS))
SHLIB_LINK = $(shell pkg-config --libs $(PKG_LIBS))

# Strict by default: the project builds warning-free (PostgreSQL's own headers trip
# -Wunused-parameter, hence its exception).
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter

# The built-in tables are the ViewDefinitions in views/, compiled into the module.
VIEW_FILES = $(sort $(wildcard $(srcdir)/views/*.json))
EXTRA_CLEAN = src/builtin_views.c

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
# PGXS tracks no header dependencies: every object (and bitcode file)
# depends on every header, so a changed struct never leaves a stale object.
HEADERS = $(wildcard $(srcdir)/src/*.h)
$(OBJS) $(OBJS:.o=.bc): $(HEADERS)

# make installcheck: pg_regress runs under scripts/installcheck.sh, which starts
# the HTTPS sandbox the tests need unless the caller (scripts/test.sh, ...)
# already did.
pg_regress_installcheck := $(subst $(top_builddir)/src/test/regress/pg_regress,bash $(srcdir)/scripts/installcheck.sh $(top_builddir)/src/test/regress/pg_regress,$(pg_regress_installcheck))

src/builtin_views.c: $(VIEW_FILES) $(srcdir)/scripts/embed_views.py | $(CURDIR)/src
	python3 $(srcdir)/scripts/embed_views.py $@ $(VIEW_FILES)

# Out-of-tree (VPATH) builds, as Debian's pg_buildext does in build-15/: the
# objects of src/ go to the build directory's own src/.
$(OBJS) $(OBJS:.o=.bc): | $(CURDIR)/src
$(CURDIR)/src:
	$(MKDIR_P) $@

.PHONY: demo test unit
demo:
	bash $(srcdir)/scripts/demo.sh
test:
	bash $(srcdir)/scripts/test.sh
unit:
	bash $(srcdir)/test/unit/run.sh
