# The host: the machine's own gcc, no board code beyond a stub counter.
CC ?= gcc
CXX ?= g++
SIZE ?= size
TARGET_CFLAGS :=
TARGET_CXXFLAGS :=
TARGET_LDFLAGS :=
BOARD_SRCS := $(STUB_DIR)/board/host/board_host.c
EXE_SUFFIX :=
