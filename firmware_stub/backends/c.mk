# The interpreter-free C engine: the generated <name>_model.c and tinyq's portable kernels.
BACKEND_C_SRCS := $(STUB_DIR)/backend_c.c $(wildcard $(STUB_DIR)/runtime/*.c) $(wildcard $(GEN_DIR)/*_model.c)
BACKEND_CXX_SRCS :=
BACKEND_VENDOR_CXX_SRCS :=
BACKEND_CFLAGS := -I$(STUB_DIR)/runtime
BACKEND_CXXFLAGS :=
BACKEND_LDFLAGS :=
