// Backend over TensorFlow Lite Micro: a MicroInterpreter over the generated model array, arena and op resolver.
#include <stdint.h>
#include <string.h>

#include <new>

#include "backend.h"
#include "tinyq_stub.h"

#include TINYQ_TFLM_MODEL_HEADER
#include TINYQ_TFLM_OP_RESOLVER_HEADER

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

alignas(16) uint8_t g_arena[TINYQ_TFLM_ARENA_SIZE];
TINYQ_TFLM_OP_RESOLVER g_resolver;
tflite::MicroInterpreter *g_interpreter = nullptr;
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_storage[sizeof(tflite::MicroInterpreter)];

bool is_int8_of_size(const TfLiteTensor *t, size_t bytes)
{
    return t != nullptr && t->type == kTfLiteInt8 && t->bytes == bytes;
}

}  // namespace

extern "C" int tinyq_backend_init(void)
{
    const tflite::Model *model = tflite::GetModel(TINYQ_TFLM_MODEL_DATA);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
        return 1;
    }
    if (TINYQ_TFLM_REGISTER_OPS(g_resolver) != kTfLiteOk) {
        return 2;
    }
    g_interpreter = new (g_interpreter_storage) tflite::MicroInterpreter(model, g_resolver, g_arena, sizeof g_arena);
    if (g_interpreter->AllocateTensors() != kTfLiteOk) {
        return 3;
    }
    if (!is_int8_of_size(g_interpreter->input(0), TINYQ_INPUT_BYTES) ||
        !is_int8_of_size(g_interpreter->output(0), TINYQ_OUTPUT_BYTES)) {
        return 4;
    }
    return 0;
}

extern "C" int tinyq_backend_invoke(const int8_t *input, int8_t *output)
{
    if (g_interpreter == nullptr) {
        return 1;
    }
    memcpy(g_interpreter->input(0)->data.int8, input, TINYQ_INPUT_BYTES);
    if (g_interpreter->Invoke() != kTfLiteOk) {
        return 2;
    }
    memcpy(output, g_interpreter->output(0)->data.int8, TINYQ_OUTPUT_BYTES);
    return 0;
}
