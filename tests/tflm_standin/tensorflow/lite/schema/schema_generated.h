// Stand-in for TFLite's schema_generated.h (API shape only, for syntax checks).
#pragma once
#define TFLITE_SCHEMA_VERSION (3)
