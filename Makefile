# lb: build, test, run, bench, install. See README.md.
#
#   make            build/lb and build/replica (gcc)
#   make test       deps, then every suite in a gcc build and in a clang
#                   AddressSanitizer + UndefinedBehaviorSanitizer build
#   make run        the demo: three replicas behind lb on :8080
#   make bench      lb vs HAProxy vs nginx (scripts/bench.sh)
#   make rolling-restart   requests lost in a rolling restart, lb vs HAProxy vs nginx

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
SANITIZE ?= 0

PKGS     := libevent libevent_pthreads yaml-0.1
CPPFLAGS += -D_GNU_SOURCE -Ilb -MMD -MP
CFLAGS   += -std=c11 -O2 -g -Wall -Wextra -Werror -pthread
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -levent -levent_pthreads -lyaml) -lhttp_parser -lm

ifeq ($(SANITIZE),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

LB_SRCS   := $(wildcard lb/*.c)
LB_OBJS   := $(LB_SRCS:lb/%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(LB_OBJS))
UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/unit/%)

.PHONY: all units fuzz test run bench rolling-restart install clean deps
all: $(BUILD)/lb $(BUILD)/replica

$(BUILD)/obj/%.o: lb/%.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/liblb.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lb: $(BUILD)/obj/main.o $(BUILD)/liblb.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/replica: test/replica/replica.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

units: $(UNIT_BINS)
# Compiled and linked in one step (so no -MMD: clang refuses it with -o
# and several inputs); rebuilt whenever any header changes.
$(BUILD)/unit/%: test/unit/%.c $(BUILD)/liblb.a $(wildcard lb/*.h) | $(BUILD)/unit
	$(CC) -D_GNU_SOURCE -Ilb $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblb.a $(LDLIBS) -lcmocka

$(BUILD)/obj $(BUILD)/unit:
	mkdir -p $@

# Fuzz targets (libFuzzer), each linked with the pure module it exercises.
# make test builds them and replays their seed corpora, so that they keep
# compiling and every seed keeps passing; fuzz for real by hand (each
# file's header says how).
FUZZ_DIR    := build-fuzz
FUZZ_BINS   := $(patsubst test/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilb -Wall -Wextra -Werror
HTTP_PURE := lb/http_msg.c lb/http_body.c lb/http_rewrite.c
$(FUZZ_DIR)/fuzz_http_msg: $(HTTP_PURE)
$(FUZZ_DIR)/fuzz_http_response_diff: $(HTTP_PURE)
$(FUZZ_DIR)/fuzz_proxy_proto: lb/proxy_proto.c
$(FUZZ_DIR)/fuzz_config: lb/config.c lb/config_tree.c lb/config_value.c
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

run:
	@scripts/deps.sh --run
	$(MAKE) all
	scripts/demo.sh

bench:
	scripts/deps.sh --bench
	$(MAKE) all
	scripts/bench.sh
rolling-restart:
	scripts/deps.sh --bench
	$(MAKE) all
	scripts/rolling-restart.sh

install: all
	install -D -m 0755 $(BUILD)/lb $(DESTDIR)$(PREFIX)/sbin/lb
	install -D -m 0755 scripts/lbctl $(DESTDIR)$(PREFIX)/sbin/lbctl
	test -e $(DESTDIR)/etc/lb/lb.yaml || install -D -m 0644 conf/lb.yaml $(DESTDIR)/etc/lb/lb.yaml
	install -D -m 0644 scripts/lb.service $(DESTDIR)/etc/systemd/system/lb.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/lb/README.md

clean:
	rm -rf build build-asan build-fuzz

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/unit/*.d)
