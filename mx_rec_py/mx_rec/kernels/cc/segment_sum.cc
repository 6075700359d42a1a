// MxrecSegmentSum: out[s] = sum of data[i] over the i with segment_ids[i] == s, in increasing i.
//
// TF's UnsortedSegmentSum adds the rows one after another on one thread. Here each thread owns
// every shards-th segment (interleaved: the hot keys, numbered first, spread over the threads) and walks all of `segment_ids` in order, adding the rows of its segments: the
// same additions in the same order, so the same numbers whatever the thread count, and `data` is
// still read front to back. Negative ids are dropped (as TF does); ids >= num_segments are an error.
#include <algorithm>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace {

REGISTER_OP("MxrecSegmentSum")
    .Input("data: T")
    .Input("segment_ids: Tindices")
    .Input("num_segments: Tnumsegments")
    .Output("output: T")
    .Attr("T: {float, double, half, bfloat16}")
    .Attr("Tindices: {int32, int64}")
    .Attr("Tnumsegments: {int32, int64}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle data;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &data));
      shape_inference::DimensionHandle segments;
      TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(2, &segments));
      c->set_output(0, c->Matrix(segments, c->Dim(data, 1)));
      return OkStatus();
    })
    .Doc("Deterministic parallel segment sum of rows (mx_rec).");

template <typename T>
inline void AddRow(T* __restrict out, const T* __restrict in, int64_t dim) {
  for (int64_t j = 0; j < dim; ++j) out[j] += in[j];
}

template <typename T, typename Index, typename NumSegments>
class SegmentSumOp : public OpKernel {
 public:
  explicit SegmentSumOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& data = ctx->input(0);
    const Tensor& ids = ctx->input(1);
    OP_REQUIRES(ctx, data.dims() == 2 && ids.dims() == 1 && ids.dim_size(0) == data.dim_size(0),
                errors::InvalidArgument("MxrecSegmentSum: data ", data.shape().DebugString(), " and segment_ids ",
                                        ids.shape().DebugString(), " do not match"));
    const int64_t segments = static_cast<int64_t>(ctx->input(2).scalar<NumSegments>()());
    OP_REQUIRES(ctx, segments >= 0, errors::InvalidArgument("MxrecSegmentSum: num_segments < 0"));
    const int64_t n = data.dim_size(0);
    const int64_t dim = data.dim_size(1);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({segments, dim}), &out));
    const Index* id = ids.flat<Index>().data();
    for (int64_t i = 0; i < n; ++i) {
      OP_REQUIRES(ctx, static_cast<int64_t>(id[i]) < segments,
                  errors::InvalidArgument("MxrecSegmentSum: segment_ids[", i, "] = ", static_cast<int64_t>(id[i]),
                                          " is not below num_segments = ", segments));
    }
    const T* in = data.flat<T>().data();
    T* o = out->flat<T>().data();
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    int64_t shards = 1;  // a power of two, so that a segment's shard is a mask, not a division
    while (shards * 2 <= std::min<int64_t>({workers->num_threads, segments, n * dim / 32768})) shards *= 2;
    const int64_t mask = shards - 1;
    auto work = [&](int64_t first, int64_t last) {
      for (int64_t s = first; s < last; ++s) {
        for (int64_t seg = s; seg < segments; seg += shards) std::fill(o + seg * dim, o + (seg + 1) * dim, T(0));
        for (int64_t i = 0; i < n; ++i) {
          const int64_t seg = static_cast<int64_t>(id[i]);
          if (seg >= 0 && (seg & mask) == s) AddRow<T>(o + seg * dim, in + i * dim, dim);
        }
      }
    };
    Shard(workers->num_threads, workers->workers, shards, /*cost_per_unit=*/1 << 30, work);
  }
};

#define REGISTER(T, I, S)                                                                             \
  REGISTER_KERNEL_BUILDER(Name("MxrecSegmentSum")                                                     \
                              .Device(DEVICE_CPU)                                                     \
                              .TypeConstraint<T>("T")                                                 \
                              .TypeConstraint<I>("Tindices")                                          \
                              .TypeConstraint<S>("Tnumsegments")                                      \
                              .HostMemory("num_segments"),                                            \
                          SegmentSumOp<T, I, S>);
#define REGISTER_ALL(T) REGISTER(T, int32, int32) REGISTER(T, int32, int64_t) \
                        REGISTER(T, int64_t, int32) REGISTER(T, int64_t, int64_t)
REGISTER_ALL(float)
REGISTER_ALL(double)
REGISTER_ALL(Eigen::half)
REGISTER_ALL(bfloat16)
#undef REGISTER_ALL
#undef REGISTER

}  // namespace
}  // namespace tensorflow
