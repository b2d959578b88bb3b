# epic_fdw — PostgreSQL foreign data wrapper for Epic / FHIR servers (PGXS build)

MODULE_big = epic_fdw
OBJS = epic_fdw.o \
	src/options.o src/catalog.o src/deparse.o src/connection.o \
	src/http.o src/auth.o src/bundle.o src/fhirpath.o src/json_jansson.o \
	src/convert.o src/functions.o

EXTENSION = epic_fdw
DATA = epic_fdw--0.1.sql
PGFILEDESC = "epic_fdw - foreign data wrapper for FHIR servers (Epic)"

REGRESS = options auth scan paging pushdown planning joins dataset equivalence memory faults golive errors security
REGRESS_OPTS = --load-extension=epic_fdw

PG_CONFIG ?= $(shell command -v pg_config >/dev/null 2>&1 && echo pg_config || echo /usr/lib/postgresql/15/bin/pg_config)

PKG_LIBS = libcurl jansson libcrypto
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags $(PKG_LIBS))
SHLIB_LINK = $(shell pkg-config --libs $(PKG_LIBS))

# Strict by default: the project builds warning-free (PostgreSQL's own headers trip
# -Wunused-parameter, hence its exception).
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: demo test unit
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
unit:
	bash test/unit/run.sh
