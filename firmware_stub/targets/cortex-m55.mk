# Cortex-M55 as QEMU emulates it on the mps3-an547 board (ITCM at 0, DTCM at 0x20000000, 32 MHz): `make TARGET=cortex-m55`.
CM_CPU := cortex-m55
CM_MEMORY := 0x0 512K 0x20000000 512K
CM_STACK := 
CM_TICK_X256 := 8000
include $(dir $(lastword $(MAKEFILE_LIST)))cortex-m.mk
