# Cortex-M33 as QEMU emulates it on the mps2-an505 board (secure SSRAM1 at 0x10000000, SSRAM2 at 0x38000000, 20 MHz): `make TARGET=cortex-m33`.
CM_CPU := cortex-m33
CM_MEMORY := 0x10000000 4M 0x38000000 4M
CM_STACK := 
CM_TICK_X256 := 12800
include $(dir $(lastword $(MAKEFILE_LIST)))cortex-m.mk
