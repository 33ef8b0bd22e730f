# TensorFlow Lite Micro: `make BACKEND=tflm TFLM_DIR=<tflite-micro source tree> [TFLM_THIRD_PARTY_INCLUDES=...]`.
# TFLM's own build downloads its third-party code; here its kernel and framework sources are compiled directly,
# with flatbuffers and gemmlowp headers taken from TFLM_THIRD_PARTY_INCLUDES (e.g. Debian's /usr/include).
ifeq ($(strip $(TFLM_DIR)),)
$(error BACKEND=tflm needs TFLM_DIR, the path of a tflite-micro source tree)
endif
TFLM_DIR := $(abspath $(TFLM_DIR))
TFLM_THIRD_PARTY_INCLUDES ?= /usr/include/gemmlowp
TFLM_SRCS := $(filter-out %_test.cc %test_common.cc %test_helpers.cc %test_helper_custom_ops.cc %recording_micro_allocator.cc %mock_micro_graph.cc %kernel_runner.cc,\
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/arena_allocator/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/memory_planner/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/tflite_bridge/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/kernels/*.cc) \
	$(TFLM_DIR)/tensorflow/lite/core/c/common.cc \
	$(TFLM_DIR)/tensorflow/lite/core/api/flatbuffer_conversions.cc \
	$(TFLM_DIR)/tensorflow/lite/core/api/tensor_utils.cc \
	$(TFLM_DIR)/tensorflow/lite/kernels/internal/quantization_util.cc \
	$(TFLM_DIR)/tensorflow/lite/kernels/internal/common.cc \
	$(TFLM_DIR)/tensorflow/lite/kernels/internal/tensor_ctypes.cc \
	$(TFLM_DIR)/tensorflow/lite/kernels/internal/portable_tensor_utils.cc \
	$(TFLM_DIR)/tensorflow/lite/kernels/kernel_util.cc \
	$(wildcard $(TFLM_DIR)/tensorflow/compiler/mlir/lite/core/api/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/compiler/mlir/lite/schema/*.cc))
BACKEND_C_SRCS := $(wildcard $(GEN_DIR)/*_model_data.c)
BACKEND_CXX_SRCS := $(STUB_DIR)/backend_tflm.cc
BACKEND_VENDOR_CXX_SRCS := $(sort $(TFLM_SRCS))
TFLM_INCLUDES := -isystem $(TFLM_DIR) $(addprefix -isystem ,$(TFLM_THIRD_PARTY_INCLUDES))
BACKEND_CFLAGS :=
# TFLM's headers expand macros with unused parameters into our translation unit; that one warning is off.
BACKEND_CXXFLAGS := $(TFLM_INCLUDES) -Wno-unused-parameter -DTF_LITE_STATIC_MEMORY -DFLATBUFFERS_LOCALE_INDEPENDENT=0 -DTF_LITE_DISABLE_X86_NEON -fno-rtti -fno-exceptions
BACKEND_LDFLAGS :=
LINKER := $(CXX)
