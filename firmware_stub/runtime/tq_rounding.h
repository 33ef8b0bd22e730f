/* Which of TFLite's two requantization rules the engine follows (tq_requant.h): 0, double rounding (TFLM's
   default build, TFLite's reference kernels); 1, single rounding (a TFLM built with TFLITE_SINGLE_ROUNDING).
   This copy is the default for the runtime compiled in place (tests, -DTQ_SINGLE_ROUNDING=1 to change it); an
   emitted folder holds a generated tq_rounding.h that fixes the model's mode, which its golden vectors follow. */
#ifndef TQ_ROUNDING_H_
#define TQ_ROUNDING_H_

#ifndef TQ_SINGLE_ROUNDING
#define TQ_SINGLE_ROUNDING 0
#endif

#endif /* TQ_ROUNDING_H_ */
