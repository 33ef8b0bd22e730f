# Cortex-M3 as QEMU emulates it on the mps2-an385 board (25 MHz): `make TARGET=cortex-m3`.
CM_CPU := cortex-m3
CM_MEMORY := 
CM_STACK := 
CM_TICK_X256 := 10240
include $(dir $(lastword $(MAKEFILE_LIST)))cortex-m.mk
