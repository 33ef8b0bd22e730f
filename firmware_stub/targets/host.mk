# The host: the machine's own gcc, no board code beyond a stub counter.
CC ?= gcc
CXX ?= g++
SIZE ?= size
TARGET_CFLAGS :=
TARGET_CXXFLAGS :=
TARGET_LDFLAGS :=
BOARD_SRCS := $(STUB_DIR)/board/host/board_host.c
EXE_SUFFIX :=
# NATIVE=1: compile for this machine's own instruction set (-march=native, where the compiler takes it), for
# builds that only ever run where they were built: the engine library tinyq loads, host test builds.
ifeq ($(NATIVE),1)
TARGET_CFLAGS += $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
endif
