# Cortex-M7 as QEMU emulates it on the mps2-an500 board (25 MHz): `make TARGET=cortex-m7`.
CM_CPU := cortex-m7
CM_MEMORY := 
CM_STACK := 
CM_TICK_X256 := 10240
include $(dir $(lastword $(MAKEFILE_LIST)))cortex-m.mk
