# Cortex-M0 as QEMU emulates it on the BBC micro:bit (nRF51: 256 KB flash, 16 KB RAM, 16 MHz): `make TARGET=cortex-m0`.
CM_CPU := cortex-m0
CM_MEMORY := 0x0 256K 0x20000000 16K
CM_STACK := 3K
CM_TICK_X256 := 16000
include $(dir $(lastword $(MAKEFILE_LIST)))cortex-m.mk
