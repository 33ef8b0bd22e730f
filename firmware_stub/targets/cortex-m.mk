# Every Cortex-M target (TARGET=cortex-m4 etc.). The same stub and generated sources as the host build; only the
# tools, flags and board files differ. Links newlib-nano with semihosting (rdimon) for printf, fopen and the exit
# code, our own start-up instead of crt0 (-nostartfiles), and wraps tinyq_backend_invoke so the board can count
# instructions around it.
#
# What differs between cores (CPU, float ABI, memory map, stack, SysTick clock) is defined once, in tinyq's target
# registry (tinyq/targets/registry.py), and reaches make as the CM_* variables below: tinyq passes them on the
# command line; a hand-run `make TARGET=cortex-m4` asks the registry (`python3 -m tinyq.targets cortex-m4`).

comma := ,
PYTHON ?= python3
CM_VARIABLES := CM_CPU CM_FLOAT_ABI CM_FLASH_ORIGIN CM_FLASH_LENGTH CM_RAM_ORIGIN CM_RAM_LENGTH CM_STACK CM_TICK_X256
ifeq ($(strip $(CM_CPU)),)
# The folder holding the tinyq package: the repository (firmware_stub/ beside tinyq/) or an installed wheel
# (tinyq/firmware_stub/ inside it).
CM_TINYQ_ROOT := $(firstword $(foreach d,$(realpath $(STUB_DIR)/..) $(realpath $(STUB_DIR)/../..),\
	$(if $(wildcard $(d)/tinyq/targets/registry.py),$(d))))
CM_FROM_REGISTRY := $(if $(CM_TINYQ_ROOT),$(shell PYTHONPATH=$(CM_TINYQ_ROOT) $(PYTHON) -m tinyq.targets $(TARGET)))
$(foreach v,$(filter CM_%,$(CM_FROM_REGISTRY)),$(eval $(v)))
endif
$(foreach v,$(CM_VARIABLES),$(if $(strip $($(v))),,$(error unknown TARGET '$(TARGET)': no $(v) from tinyq's \
	target registry (python3 -m tinyq.targets $(TARGET) names the known cores))))

CM_BOARD_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../board/cortex_m)
CROSS_COMPILE ?= arm-none-eabi-

CC := $(CROSS_COMPILE)gcc
CXX := $(CROSS_COMPILE)g++
SIZE := $(CROSS_COMPILE)size

CM_ARCH := -mcpu=$(CM_CPU) -mthumb -mfloat-abi=$(CM_FLOAT_ABI)
TARGET_CFLAGS := $(CM_ARCH) -ffunction-sections -fdata-sections -I$(CM_BOARD_DIR) \
	-DTINYQ_INSTRUCTIONS_PER_TICK_X256=$(CM_TICK_X256)u
# Without crtbegin (-nostartfiles) there is no __dso_handle: static destructors register through atexit instead.
TARGET_CXXFLAGS := $(TARGET_CFLAGS) -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit
# The core's memory map and stack, as symbols board/cortex_m/cortex_m.ld reads.
CM_DEFSYMS := $(addprefix -Wl$(comma)--defsym=,TINYQ_FLASH_ORIGIN=$(CM_FLASH_ORIGIN) \
	TINYQ_FLASH_LENGTH=$(CM_FLASH_LENGTH) TINYQ_RAM_ORIGIN=$(CM_RAM_ORIGIN) TINYQ_RAM_LENGTH=$(CM_RAM_LENGTH) \
	STACK_SIZE=$(CM_STACK))
# Recursively expanded so that $@ (the ELF) names the map file at link time: stub.elf.map.
TARGET_LDFLAGS = $(CM_ARCH) --specs=nano.specs --specs=rdimon.specs -nostartfiles -T $(CM_BOARD_DIR)/cortex_m.ld \
	$(CM_DEFSYMS) -Wl,--gc-sections -Wl,--wrap=tinyq_backend_invoke -Wl,-Map=$@.map
BOARD_SRCS := $(CM_BOARD_DIR)/startup.c $(CM_BOARD_DIR)/board.c $(CM_BOARD_DIR)/measure.c
# The per-op instruction counts of `make PROFILE=1` (see the Makefile).
PROFILE_SRCS := $(CM_BOARD_DIR)/profile.c
EXE_SUFFIX := .elf
