"""Package data: the firmware stub, runtime kernels, board support and Makefile (shipped as tinyq.firmware_stub)."""
