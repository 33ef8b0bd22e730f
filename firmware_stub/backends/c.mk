# The interpreter-free C engine: the generated <name>_model.c and the kernels copied beside it, i.e. every C
# source of the emitted folder but the golden vectors and the TFLM model array (the stub builds what you flash).
BACKEND_C_SRCS := $(STUB_DIR)/backend_c.c \
	$(filter-out %_golden.c %_model_data.c,$(wildcard $(GEN_DIR)/*.c))
BACKEND_CXX_SRCS :=
BACKEND_VENDOR_CXX_SRCS :=
BACKEND_CFLAGS :=
BACKEND_CXXFLAGS :=
BACKEND_LDFLAGS :=
