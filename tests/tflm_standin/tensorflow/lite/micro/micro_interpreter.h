// Stand-in for TFLM's micro_interpreter.h (API shape only, for syntax checks).
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteInt8 = 9 } TfLiteType;
typedef struct {
    TfLiteType type;
    union { int8_t *int8; void *raw; } data;
    size_t bytes;
} TfLiteTensor;
namespace tflite {
struct Model {
    uint32_t version() const;
};
const Model *GetModel(const void *buf);
class MicroOpResolver {};
class MicroInterpreter {
  public:
    MicroInterpreter(const Model *model, const MicroOpResolver &resolver, uint8_t *arena, size_t arena_size);
    TfLiteStatus AllocateTensors();
    TfLiteStatus Invoke();
    TfLiteTensor *input(size_t index);
    TfLiteTensor *output(size_t index);
};
}  // namespace tflite
