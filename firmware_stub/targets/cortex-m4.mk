# Cortex-M4 as QEMU emulates it on the mps2-an386 board: `make TARGET=cortex-m4`.
# The same stub and generated sources as the host build; only the tools, flags and board files differ here.
# Links newlib-nano with semihosting (rdimon) for printf, fopen and the exit code, our own start-up instead of
# crt0 (-nostartfiles), and wraps tinyq_backend_invoke so the board can count instructions around it.

CM4_BOARD_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../board/cortex_m4)
CROSS_COMPILE ?= arm-none-eabi-

CC := $(CROSS_COMPILE)gcc
CXX := $(CROSS_COMPILE)g++
SIZE := $(CROSS_COMPILE)size

CM4_ARCH := -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
TARGET_CFLAGS := $(CM4_ARCH) -ffunction-sections -fdata-sections -I$(CM4_BOARD_DIR)
TARGET_CXXFLAGS := $(TARGET_CFLAGS) -fno-exceptions -fno-rtti -fno-threadsafe-statics
# Recursively expanded so that $@ (the ELF) names the map file at link time: stub.elf.map.
TARGET_LDFLAGS = $(CM4_ARCH) --specs=nano.specs --specs=rdimon.specs -nostartfiles -T $(CM4_BOARD_DIR)/mps2_an386.ld \
	-Wl,--gc-sections -Wl,--wrap=tinyq_backend_invoke -Wl,-Map=$@.map
BOARD_SRCS := $(CM4_BOARD_DIR)/startup.c $(CM4_BOARD_DIR)/board.c $(CM4_BOARD_DIR)/measure.c
EXE_SUFFIX := .elf
