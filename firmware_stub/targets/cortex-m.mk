# Shared by every Cortex-M target (targets/cortex-m<N>.mk sets CM_CPU, CM_MEMORY, CM_TICK_X256, CM_STACK and
# includes this file). The same stub and generated sources as the host build; only the tools, flags and board
# files differ. Links newlib-nano with semihosting (rdimon) for printf, fopen and the exit code, our own start-up
# instead of crt0 (-nostartfiles), and wraps tinyq_backend_invoke so the board can count instructions around it.

comma := ,
CM_BOARD_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../board/cortex_m)
CROSS_COMPILE ?= arm-none-eabi-

CC := $(CROSS_COMPILE)gcc
CXX := $(CROSS_COMPILE)g++
SIZE := $(CROSS_COMPILE)size

CM_ARCH := -mcpu=$(CM_CPU) -mthumb -mfloat-abi=soft
TARGET_CFLAGS := $(CM_ARCH) -ffunction-sections -fdata-sections -I$(CM_BOARD_DIR) \
	-DTINYQ_INSTRUCTIONS_PER_TICK_X256=$(CM_TICK_X256)u
# Without crtbegin (-nostartfiles) there is no __dso_handle: static destructors register through atexit instead.
TARGET_CXXFLAGS := $(TARGET_CFLAGS) -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit
# CM_MEMORY is "FLASH_ORIGIN FLASH_LENGTH RAM_ORIGIN RAM_LENGTH" (empty: the linker script's mps2 defaults).
CM_DEFSYMS := $(if $(CM_MEMORY),$(addprefix -Wl$(comma)--defsym=,$(join TINYQ_FLASH_ORIGIN= TINYQ_FLASH_LENGTH= \
	TINYQ_RAM_ORIGIN= TINYQ_RAM_LENGTH=,$(CM_MEMORY)))) $(if $(CM_STACK),-Wl$(comma)--defsym=STACK_SIZE=$(CM_STACK))
# Recursively expanded so that $@ (the ELF) names the map file at link time: stub.elf.map.
TARGET_LDFLAGS = $(CM_ARCH) --specs=nano.specs --specs=rdimon.specs -nostartfiles -T $(CM_BOARD_DIR)/cortex_m.ld \
	$(CM_DEFSYMS) -Wl,--gc-sections -Wl,--wrap=tinyq_backend_invoke -Wl,-Map=$@.map
BOARD_SRCS := $(CM_BOARD_DIR)/startup.c $(CM_BOARD_DIR)/board.c $(CM_BOARD_DIR)/measure.c
# The per-op instruction counts of `make PROFILE=1` (see the Makefile).
PROFILE_SRCS := $(CM_BOARD_DIR)/profile.c
EXE_SUFFIX := .elf
