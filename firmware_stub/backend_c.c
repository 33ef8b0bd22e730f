/* Backend over tinyq's interpreter-free C engine (generated <name>_model.c). */
#include "backend.h"
#include "tinyq_stub.h"

#include TINYQ_C_MODEL_HEADER

int tinyq_backend_init(void)
{
    return TINYQ_C_INIT();
}

int tinyq_backend_invoke(const int8_t *input, int8_t *output)
{
    return TINYQ_C_INVOKE(input, output);
}
