# lb: build, test, run, bench, install. See README.md.
#
#   make            build/lb and build/replica (gcc)
#   make test       deps, then every suite in a gcc build and in a clang
#                   AddressSanitizer + UndefinedBehaviorSanitizer build
#   make tsan       unit and integration suites under ThreadSanitizer, 4 workers
#   make run        the demo: three replicas behind lb on :8080
#   make bench      lb vs HAProxy vs nginx (scripts/bench.sh), plain, then over TLS,
#                   then HTTP/2 (scripts/bench-h2.sh) and overload (scripts/overload.sh)
#   make rolling-restart   requests lost in a rolling restart, lb vs HAProxy vs nginx
#   make deb        the Debian package, build/deb/lb_VERSION_ARCH.deb (debian/),
#                   checked by lintian

comma    := ,
CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
SANITIZE ?= 0

PKGS     := libevent libevent_pthreads yaml-0.1 libssl libcrypto libcares libnghttp2
CPPFLAGS += -D_GNU_SOURCE -MMD -MP
# libnghttp2's flood limits came in 1.56-1.61; Debian back-ports them into
# 1.52 without changing the version: ask the linker, not the version.
h2_has = $(shell printf '\043include <nghttp2/nghttp2.h>\nint main(void) { nghttp2_option *o; nghttp2_option_new(&o); $(1); return 0; }\n' \
	| $(CC) -x c - -o /dev/null -lnghttp2 2>/dev/null && echo $(2))
CPPFLAGS += $(call h2_has,nghttp2_option_set_max_continuations(o$(comma) 8),-DLB_H2_MAX_CONTINUATIONS) \
	    $(call h2_has,nghttp2_option_set_stream_reset_rate_limit(o$(comma) 1$(comma) 1),-DLB_H2_RESET_RATE_LIMIT)
CFLAGS   += -std=c11 -O2 -g -Wall -Wextra -Werror -pthread
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -levent -levent_pthreads -lyaml -lssl -lcrypto -lcares -lnghttp2) -lhttp_parser -lm

ifeq ($(SANITIZE),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SANITIZE),thread)
CFLAGS  += -O1 -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

# The sources by layer, bottom up (README "Layout"). A layer's include path
# holds its own headers and those of the layers below, so an upward include
# does not compile; core/ also finds every libevent header replaced by an
# #error (NO_LIBEVENT), which proves it pure of the event loop.
LAYERS      := core event runtime proxy admin
NO_LIBEVENT := $(BUILD)/no-libevent
inc_core     = -I$(NO_LIBEVENT) -Ilb/core
inc_event    = -Ilb/core -Ilb/event
inc_runtime  = $(inc_event) -Ilb/runtime
inc_proxy    = $(inc_runtime) -Ilb/proxy
inc_admin    = $(inc_runtime) -Ilb/admin
inc_top      = $(inc_proxy) -Ilb/admin -Ilb

LB_SRCS   := $(wildcard lb/*.c $(LAYERS:%=lb/%/*.c))
LB_OBJS   := $(LB_SRCS:lb/%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(LB_OBJS))
UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/unit/%)

.PHONY: all units fuzz test tsan run bench rolling-restart install clean deps deb
all: $(BUILD)/lb $(BUILD)/replica

define layer_objects
$$(BUILD)/obj/$(1)/%.o: lb/$(1)/%.c | $$(NO_LIBEVENT)/event2
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS) $$(inc_$(1)) $$(CFLAGS) -c -o $$@ $$<
endef
$(foreach layer,$(LAYERS),$(eval $(call layer_objects,$(layer))))

$(BUILD)/obj/%.o: lb/%.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(inc_top) $(CFLAGS) -c -o $@ $<

$(NO_LIBEVENT)/event2:
	mkdir -p $@.tmp
	for h in /usr/include/event2/*.h; do \
		echo '#error "lb/core is below the event loop: no libevent here"' > $@.tmp/$${h##*/}; done
	mv $@.tmp $@

$(BUILD)/liblb.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lb: $(BUILD)/obj/main.o $(BUILD)/liblb.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/replica: test/replica/replica.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

units: $(UNIT_BINS)
# Compiled and linked in one step (so no -MMD: clang refuses it with -o
# and several inputs); rebuilt whenever a header changes. They test core/
# (its include path), except test_gen, which tests runtime/gen.c's sockets,
# and test_relay and test_evmem, which test event/ with libevent.
unit_inc = $(if $(filter test_gen,$(1)),$(inc_runtime),$(if $(filter test_relay test_evmem,$(1)),$(inc_event),$(inc_core)))
$(BUILD)/unit/%: test/unit/%.c $(BUILD)/liblb.a $(wildcard lb/*/*.h) | $(BUILD)/unit $(NO_LIBEVENT)/event2
	$(CC) -D_GNU_SOURCE $(call unit_inc,$*) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblb.a $(LDLIBS) -lcmocka

$(BUILD)/obj $(BUILD)/unit:
	mkdir -p $@

# Fuzz targets (libFuzzer), each linked with the pure module it exercises.
# make test builds them and replays their seed corpora, so that they keep
# compiling and every seed keeps passing; fuzz for real by hand (each
# file's header says how).
FUZZ_DIR    := build-fuzz
FUZZ_BINS   := $(patsubst test/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilb/core -Wall -Wextra -Werror
HTTP_PURE := lb/core/http_msg.c lb/core/http_body.c lb/core/http_rewrite.c
$(FUZZ_DIR)/fuzz_http_msg: $(HTTP_PURE)
$(FUZZ_DIR)/fuzz_http_response_diff: $(HTTP_PURE)
$(FUZZ_DIR)/fuzz_proxy_proto: lb/core/proxy_proto.c
$(FUZZ_DIR)/fuzz_config: lb/core/config.c lb/core/config_tree.c lb/core/config_value.c
# The TLS transport runs on conns: libevent and OpenSSL too.
$(FUZZ_DIR)/fuzz_tls_accept: test/fuzz/fuzz_tls_accept.c lb/event/tls_conn.c lb/event/conn.c lb/core/slab.c lb/core/state.c \
			     $(wildcard lb/event/*.h lb/core/*.h)
	@mkdir -p $(FUZZ_DIR)
	clang $(FUZZ_CFLAGS) -Ilb/event -o $@ $< $(filter lb/%.c,$^) -levent -lssl -lcrypto
$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c
	@mkdir -p $(FUZZ_DIR)
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter lb/%.c,$^) -lhttp_parser -lyaml

fuzz: $(FUZZ_BINS)

deps:
	@scripts/deps.sh

test: deps
	$(MAKE) all units
	$(MAKE) BUILD=build-asan SANITIZE=1 CC=clang all units
	$(MAKE) fuzz
	scripts/run-tests.sh build build-asan

# ThreadSanitizer: the unit tests and the integration suite, every lb with
# 4 workers (LB_TEST_WORKERS), in a clang build of its own.
tsan: deps
	$(MAKE) BUILD=build-tsan SANITIZE=thread CC=clang all units
	LB_TEST_WORKERS=4 RUN_FUZZ_SEEDS=0 scripts/run-tests.sh build-tsan

run:
	@scripts/deps.sh --run
	$(MAKE) all
	scripts/demo.sh

bench:
	scripts/deps.sh --bench
	$(MAKE) all
	scripts/bench.sh
	BENCH_TLS=ecdsa scripts/bench.sh
	BENCH_TLS=rsa BENCH_IDLE=0 scripts/bench.sh
	scripts/bench-h2.sh
	scripts/overload.sh
rolling-restart:
	scripts/deps.sh --bench
	$(MAKE) all
	scripts/rolling-restart.sh

install: all
	install -D -m 0755 $(BUILD)/lb $(DESTDIR)$(PREFIX)/sbin/lb
	install -D -m 0755 scripts/lbctl $(DESTDIR)$(PREFIX)/sbin/lbctl
	install -D -m 0755 scripts/lb-healthwatch $(DESTDIR)$(PREFIX)/sbin/lb-healthwatch
	test -e $(DESTDIR)/etc/lb/lb.yaml || install -D -m 0644 conf/lb.yaml $(DESTDIR)/etc/lb/lb.yaml
	install -D -m 0644 scripts/lb.service $(DESTDIR)/etc/systemd/system/lb.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/lb/README.md
	install -D -m 0644 man/lb.8 $(DESTDIR)$(PREFIX)/share/man/man8/lb.8
	install -D -m 0644 man/lbctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/lbctl.8
	install -D -m 0644 man/lb-healthwatch.8 $(DESTDIR)$(PREFIX)/share/man/man8/lb-healthwatch.8
	install -D -m 0644 man/lb.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/lb.yaml.5

# The Debian package, built by dpkg-buildpackage from a copy of the working
# tree (tracked files and new ones git does not ignore, uncommitted edits
# included; no build directory) in build/deb/lb-VERSION/, so that its
# results land in build/deb/; then lintian: any E: fails, W: are printed
# (all of it in build/deb/lintian.txt).
DEB_DIR     := build/deb
DEB_VERSION := $(shell sed -n 's/^\#define LB_VERSION "\(.*\)"/\1/p' lb/core/version.h)
deb:
	scripts/deps.sh --deb
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/lb-$(DEB_VERSION)
	git ls-files -z --cached --others --exclude-standard | grep -zv '^build[^/]*/' | \
		tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $(DEB_DIR)/lb-$(DEB_VERSION)
	cd $(DEB_DIR)/lb-$(DEB_VERSION) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		dpkg-buildpackage -us -uc -b -J$$(nproc)
	cd $(DEB_DIR) && lintian --fail-on none lb_$(DEB_VERSION)_*.deb >lintian.txt 2>&1 || { cat lintian.txt; exit 1; }
	@grep -E '^[EW]: ' $(DEB_DIR)/lintian.txt || true
	@if grep -q '^E: ' $(DEB_DIR)/lintian.txt; then echo "make deb: lintian reports errors" >&2; exit 1; fi
	@echo "make deb: $$(ls $(DEB_DIR)/lb_$(DEB_VERSION)_*.deb)"

clean:
	rm -rf build build-asan build-fuzz build-tsan

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/*/*.d $(BUILD)/unit/*.d)
