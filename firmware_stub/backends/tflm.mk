# TensorFlow Lite Micro, on the host or on any Cortex-M target, from source trees the user fetched:
#   make BACKEND=tflm TFLM_DIR=<tflite-micro tree> [TARGET=cortex-m4] [CMSIS_NN_DIR=<CMSIS-NN tree>]
#        [TFLM_THIRD_PARTY_INCLUDES="<flatbuffers>/include /usr/include/gemmlowp <ruy>"]
#        [TFLM_KERNELS="conv fully_connected ..."] [TFLM_OBJ_DIR=<folder shared by several models>]
# TFLM's own build downloads its third-party code; here its framework and kernel sources are compiled directly
# into objects linked with the stub (the flash split counts them as engine code), with flatbuffers, gemmlowp and
# ruy headers taken from TFLM_THIRD_PARTY_INCLUDES.
# CMSIS_NN_DIR set: TFLM's CMSIS-NN wrappers (kernels/cmsis_nn/<op>.cc) replace the reference kernels of the same
# name and CMSIS-NN's int8/int16 sources join them (they need neither CMSIS-Core nor the DSP headers).
# TFLM_KERNELS: only these kernel files (each <name>.cc and <name>_common.cc), to shorten the build; empty: all.
# These objects depend on neither the model nor GEN_DIR: TFLM_OBJ_DIR may be shared by every model built with the
# same target, OPT, TFLM_DIR, CMSIS_NN_DIR and TFLM_KERNELS (one folder per such combination).
ifeq ($(strip $(TFLM_DIR)),)
$(error BACKEND=tflm needs TFLM_DIR, the path of a tflite-micro source tree)
endif
TFLM_DIR := $(abspath $(TFLM_DIR))
ifeq ($(wildcard $(TFLM_DIR)/tensorflow/lite/micro/micro_interpreter.h),)
$(error TFLM_DIR=$(TFLM_DIR) is not a tflite-micro source tree (no tensorflow/lite/micro/micro_interpreter.h))
endif
TFLM_THIRD_PARTY_INCLUDES ?= /usr/include/gemmlowp
TFLM_OBJ_DIR ?= $(BUILD_DIR)/tflm
TFLM_OBJ_DIR := $(abspath $(TFLM_OBJ_DIR))

TFLM_KERNEL_DIR := $(TFLM_DIR)/tensorflow/lite/micro/kernels
ifeq ($(strip $(TFLM_KERNELS)),)
TFLM_KERNEL_SRCS := $(wildcard $(TFLM_KERNEL_DIR)/*.cc)
else
TFLM_KERNEL_SRCS := $(wildcard $(foreach k,$(TFLM_KERNELS) kernel_util micro_tensor_utils,\
	$(TFLM_KERNEL_DIR)/$(k).cc $(TFLM_KERNEL_DIR)/$(k)_common.cc))
endif
TFLM_SRCS := $(filter-out %_test.cc %test_common.cc %test_helpers.cc %test_helper_custom_ops.cc %recording_micro_allocator.cc %mock_micro_graph.cc %kernel_runner.cc,\
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/arena_allocator/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/memory_planner/*.cc) \
	$(wildcard $(TFLM_DIR)/tensorflow/lite/micro/tflite_bridge/*.cc) \
	$(TFLM_KERNEL_SRCS) \
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

TFLM_DEFINES := -DTF_LITE_STATIC_MEMORY -DFLATBUFFERS_LOCALE_INDEPENDENT=0 -DTF_LITE_DISABLE_X86_NEON -DNDEBUG
CMSIS_NN_SRCS :=
ifneq ($(strip $(CMSIS_NN_DIR)),)
CMSIS_NN_DIR := $(abspath $(CMSIS_NN_DIR))
ifeq ($(wildcard $(CMSIS_NN_DIR)/Include/arm_nnfunctions.h),)
$(error CMSIS_NN_DIR=$(CMSIS_NN_DIR) is not a CMSIS-NN source tree (no Include/arm_nnfunctions.h))
endif
CMSIS_NN_WRAPPERS := $(notdir $(wildcard $(TFLM_KERNEL_DIR)/cmsis_nn/*.cc))
TFLM_SRCS := $(filter-out $(addprefix $(TFLM_KERNEL_DIR)/,$(CMSIS_NN_WRAPPERS)),$(TFLM_SRCS)) \
	$(addprefix $(TFLM_KERNEL_DIR)/cmsis_nn/,$(filter $(CMSIS_NN_WRAPPERS),$(notdir $(TFLM_KERNEL_SRCS))))
CMSIS_NN_SRCS := $(filter-out %_f16.c %_f32.c %/arm_nntables_flt.c,$(shell find $(CMSIS_NN_DIR)/Source -name '*.c'))
TFLM_DEFINES += -DCMSIS_NN -DARM_NN_ENABLE_F16=0 -DARM_NN_ENABLE_F32=0
endif

TFLM_INCLUDES := -isystem $(TFLM_DIR) $(addprefix -isystem ,$(TFLM_THIRD_PARTY_INCLUDES)) \
	$(if $(CMSIS_NN_SRCS),-isystem $(CMSIS_NN_DIR) -isystem $(CMSIS_NN_DIR)/Include)
BACKEND_C_SRCS := $(wildcard $(GEN_DIR)/*_model_data.c)
BACKEND_CXX_SRCS := $(STUB_DIR)/backend_tflm.cc
BACKEND_VENDOR_CXX_SRCS :=
BACKEND_CFLAGS :=
# TFLM's headers expand macros with unused parameters into our translation unit; that one warning is off.
BACKEND_CXXFLAGS := $(TFLM_INCLUDES) -Wno-unused-parameter $(TFLM_DEFINES) -fno-rtti -fno-exceptions
LINKER := $(CXX)

# Third-party objects are named after their whole path (TFLM has several common.cc and kernel_util.cc) and keep
# their own warnings: -Werror is for tinyq's code.
tflm_obj = $(TFLM_OBJ_DIR)/obj/$(subst /,_,$(patsubst /%,%,$(basename $(1)))).o
TFLM_OBJS := $(foreach s,$(sort $(TFLM_SRCS)) $(CMSIS_NN_SRCS),$(call tflm_obj,$(s)))
define tflm_compile_cxx
$(call tflm_obj,$(1)): $(1) | $(TFLM_OBJ_DIR)/obj
	$$(CXX) -std=c++17 $$(OPT) $$(TARGET_CXXFLAGS) $$(BACKEND_CXXFLAGS) -c $$< -o $$@
endef
define tflm_compile_c
$(call tflm_obj,$(1)): $(1) | $(TFLM_OBJ_DIR)/obj
	$$(CC) -std=c11 $$(OPT) $$(TARGET_CFLAGS) $$(TFLM_INCLUDES) $$(TFLM_DEFINES) -c $$< -o $$@
endef
$(foreach s,$(sort $(TFLM_SRCS)),$(eval $(call tflm_compile_cxx,$(s))))
$(foreach s,$(CMSIS_NN_SRCS),$(eval $(call tflm_compile_c,$(s))))

# This file is read before the Makefile's own rules: keep `all` the default goal.
.DEFAULT_GOAL := all
$(TFLM_OBJ_DIR)/obj:
	mkdir -p $@
# The stub links TFLM's objects (after its own, through BACKEND_LDFLAGS), so they are built first.
BACKEND_LDFLAGS := $(TFLM_OBJS)
$(BUILD_DIR)/stub$(EXE_SUFFIX): $(TFLM_OBJS)
