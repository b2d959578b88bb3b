# epic_fdw — PostgreSQL foreign data wrapper for Epic / FHIR servers (PGXS build)

MODULE_big = epic_fdw
OBJS = epic_fdw.o \
	src/options.o src/catalog.o src/deparse.o src/connection.o \
	src/http.o src/auth.o src/bundle.o src/fhirpath.o src/json_jansson.o \
	src/convert.o src/functions.o src/bulk.o src/viewdef.o src/json_page.o src/scan.o src/import.o src/builtin_views.o

EXTENSION = epic_fdw
DATA = epic_fdw--0.1.sql epic_fdw--0.1--0.2.sql epic_fdw--0.2--0.3.sql
PGFILEDESC = "epic_fdw - foreign data wrapper for FHIR servers (Epic)"

REGRESS = options auth scan paging pushdown planning joins dataset equivalence memory faults golive errors security views clinical concurrency bulk bulk_memory bulk_cron
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

src/builtin_views.c: $(VIEW_FILES) scripts/embed_views.py
	python3 scripts/embed_views.py $@ $(VIEW_FILES)

.PHONY: demo test unit
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
unit:
	bash test/unit/run.sh
