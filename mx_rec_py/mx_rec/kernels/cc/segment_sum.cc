// MxrecSegmentSum: out[s] = sum of data[i] over the i with segment_ids[i] == s, in increasing i.
//
// TF's UnsortedSegmentSum adds the rows one after another on one thread; here the positions are
// first grouped by segment (a counting sort, keeping their order), then segments are summed in
// parallel, each in increasing i: the same additions in the same order, so the same numbers,
// whatever the thread count. Negative ids are dropped (as TF does); ids >= num_segments are an error.
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
    std::vector<int64_t> start(segments + 1, 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t s = static_cast<int64_t>(id[i]);
      OP_REQUIRES(ctx, s < segments, errors::InvalidArgument("MxrecSegmentSum: segment_ids[", i, "] = ", s,
                                                             " is not below num_segments = ", segments));
      if (s >= 0) ++start[s + 1];
    }
    for (int64_t s = 0; s < segments; ++s) start[s + 1] += start[s];
    std::vector<int64_t> order(start[segments]);
    {
      std::vector<int64_t> fill(start.begin(), start.end() - 1);
      for (int64_t i = 0; i < n; ++i) {
        if (id[i] >= 0) order[fill[id[i]]++] = i;
      }
    }
    const T* in = data.flat<T>().data();
    T* o = out->flat<T>().data();
    auto work = [&](int64_t first, int64_t last) {
      for (int64_t s = first; s < last; ++s) {
        T* row = o + s * dim;
        for (int64_t j = 0; j < dim; ++j) row[j] = T(0);
        for (int64_t k = start[s]; k < start[s + 1]; ++k) {
          const T* src = in + order[k] * dim;
          for (int64_t j = 0; j < dim; ++j) row[j] += src[j];
        }
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    const int64_t cost = std::max<int64_t>(1, (n / std::max<int64_t>(segments, 1) + 1) * dim);
    Shard(workers->num_threads, workers->workers, segments, cost, work);
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
