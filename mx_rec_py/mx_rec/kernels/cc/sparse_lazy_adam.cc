// MxrecSparseLazyAdam: lazy Adam on the rows a step looked up, in one pass over row, m and v.
//
// For each position i of `indices` (row r = indices[i]) and column j:
//   m[r, j] = beta1 * m[r, j] + (1 - beta1) * g          (g = grad[i, j])
//   v[r, j] = beta2 * v[r, j] + (1 - beta2) * g * g
//   var[r, j] += (-step_size) * m[r, j] / (sqrt(v[r, j]) + epsilon)
// with the same operation order as the TF-op path (mx_rec/optimizers/lazy_adam.py), so both give the
// same float32 numbers. Row storage T and slot storage Tslot (m, v) may each be float, half or
// bfloat16 with float math, or both double with double math (Tgrad): each value is read, updated in
// Tgrad and rounded once to its storage type (m and v are rounded after the row's delta is computed
// from their unrounded values). Distinct rows (the usual case) are split among the threads by
// position; when a row repeats, by row number (row % shards), each shard walking `indices` in order,
// so a repeated row is updated once per occurrence, in order. Either way the result never depends on
// the thread count.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;

REGISTER_OP("MxrecSparseLazyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("step_size: Tgrad")
    .Input("beta1: Tgrad")
    .Input("beta2: Tgrad")
    .Input("epsilon: Tgrad")
    .Input("grad: Tgrad")
    .Input("indices: Tindices")
    .Attr("T: {float, double, half, bfloat16}")
    .Attr("Tslot: {float, double, half, bfloat16}")
    .Attr("Tgrad: {float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("use_locking: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle unused;
      for (int i = 3; i < 7; ++i) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(7), 2, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(8), 1, &unused));
      return OkStatus();
    })
    .Doc("Lazy Adam on the rows `indices` of var, m and v, in one pass (mx_rec).");

template <typename T, typename G>
inline G Load(const T& x) { return static_cast<G>(x); }

template <typename T, typename G>
inline T Store(G x) { return static_cast<T>(x); }

// bfloat16 <-> float written out, branch-free, so the compiler vectorizes the row loop (Eigen's scalar
// conversion does not vectorize); the same values as Eigen's (and TF's Cast): round to nearest even, a
// NaN becomes the quiet NaN of its sign.
template <>
inline float Load<bfloat16, float>(const bfloat16& x) {
  const uint32_t bits = static_cast<uint32_t>(Eigen::numext::bit_cast<uint16_t>(x)) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

template <>
inline bfloat16 Store<bfloat16, float>(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  const uint16_t rounded = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  const uint16_t nan = (u >> 31) ? 0xFFC0 : 0x7FC0;
  return Eigen::numext::bit_cast<bfloat16>(x != x ? nan : rounded);
}

// One row: scalars by value and restrict pointers, so the compiler vectorizes the columns.
template <typename T, typename S, typename G>
inline void AdamRow(T* __restrict row, S* __restrict m, S* __restrict v, const G* __restrict g, int64_t dim,
                    const G beta1, const G one_minus_beta1, const G beta2, const G one_minus_beta2, const G neg_step,
                    const G epsilon) {
  for (int64_t j = 0; j < dim; ++j) {
    const G gj = g[j];
    const G m_t = beta1 * Load<S, G>(m[j]) + one_minus_beta1 * gj;
    const G v_t = beta2 * Load<S, G>(v[j]) + one_minus_beta2 * (gj * gj);
    m[j] = Store<S, G>(m_t);
    v[j] = Store<S, G>(v_t);
    row[j] = Store<T, G>(Load<T, G>(row[j]) + (neg_step * m_t) / (std::sqrt(v_t) + epsilon));
  }
}

// The variable's tensor for an in-place sparse update, made copy-on-read with its own type X (TF's
// GetInputTensorFromVariable would take the variable's lock again, which the caller already holds).
template <typename X>
Status SparseAccess(OpKernelContext* ctx, int input, Tensor* out) {
  core::RefCountPtr<Var> var;
  TF_RETURN_IF_ERROR(LookupResource(ctx, HandleFromInput(ctx, input), &var));
  if (var->tensor()->dtype() != DataTypeToEnum<X>::v()) {
    return errors::InvalidArgument("MxrecSparseLazyAdam: input ", input, " is a ",
                                   DataTypeString(var->tensor()->dtype()), " variable, the op was given ",
                                   DataTypeString(DataTypeToEnum<X>::v()));
  }
  TF_RETURN_IF_ERROR(EnsureSparseVariableAccess<CPUDevice, X>(ctx, var.get(), /*lock_held=*/true));
  *out = *var->tensor();
  return OkStatus();
}

template <typename T, typename S, typename G, typename Index>
class SparseLazyAdamOp : public OpKernel {
 public:
  explicit SparseLazyAdamOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
  }

  void Compute(OpKernelContext* ctx) override {
    // Exclusive locks (sparse=false): TF's helper would make every variable copy-on-read with one type T,
    // which is wrong for slots of another type; each variable is made so below, with its own type.
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(ctx, use_locking_, /*sparse=*/false, {0, 1, 2});
    Tensor var, m, v;
    OP_REQUIRES(ctx, ctx->input_dtype(0) == DT_RESOURCE && ctx->input_dtype(1) == DT_RESOURCE &&
                         ctx->input_dtype(2) == DT_RESOURCE,
                errors::InvalidArgument("MxrecSparseLazyAdam: var, m and v must be resource variables"));
    OP_REQUIRES_OK(ctx, SparseAccess<T>(ctx, 0, &var));
    OP_REQUIRES_OK(ctx, SparseAccess<S>(ctx, 1, &m));
    OP_REQUIRES_OK(ctx, SparseAccess<S>(ctx, 2, &v));
    OP_REQUIRES(ctx, var.IsInitialized() && m.IsInitialized() && v.IsInitialized(),
                errors::FailedPrecondition("MxrecSparseLazyAdam: the variable or a slot is not initialized"));
    OP_REQUIRES(ctx, var.dims() == 2, errors::InvalidArgument("MxrecSparseLazyAdam: var must be 2-D, got ",
                                                              var.shape().DebugString()));
    const int64_t rows = var.dim_size(0);
    const int64_t dim = var.dim_size(1);
    OP_REQUIRES(ctx, m.dim_size(0) >= rows && v.dim_size(0) >= rows && m.dims() == 2 && v.dims() == 2 &&
                         m.dim_size(1) == dim && v.dim_size(1) == dim,
                errors::InvalidArgument("MxrecSparseLazyAdam: slots ", m.shape().DebugString(), " / ",
                                        v.shape().DebugString(), " do not cover var ", var.shape().DebugString()));
    const Tensor& grad = ctx->input(7);
    const Tensor& indices = ctx->input(8);
    const int64_t n = indices.dim_size(0);
    OP_REQUIRES(ctx, grad.dim_size(0) == n && grad.dim_size(1) == dim,
                errors::InvalidArgument("MxrecSparseLazyAdam: grad ", grad.shape().DebugString(), " does not match ",
                                        n, " indices of rows of width ", dim));
    const G step_size = ctx->input(3).scalar<G>()();
    const G beta1 = ctx->input(4).scalar<G>()();
    const G beta2 = ctx->input(5).scalar<G>()();
    const G epsilon = ctx->input(6).scalar<G>()();
    const Index* idx = indices.flat<Index>().data();
    bool repeats = false;  // a row twice: then rows are split among threads by number, see below
    {
      mutex_lock lock(seen_mu_);
      if (static_cast<int64_t>(seen_.size()) * 64 < rows) seen_.resize((rows + 63) / 64, 0);
      int64_t checked = 0;
      for (; checked < n; ++checked) {
        const int64_t r = static_cast<int64_t>(idx[checked]);
        if (r < 0 || r >= rows) break;
        uint64_t& word = seen_[r >> 6];
        const uint64_t bit = uint64_t{1} << (r & 63);
        repeats |= (word & bit) != 0;
        word |= bit;
      }
      for (int64_t i = 0; i < checked; ++i) seen_[static_cast<int64_t>(idx[i]) >> 6] = 0;  // clean for the next call
      OP_REQUIRES(ctx, checked == n,
                  errors::InvalidArgument("MxrecSparseLazyAdam: indices[", checked, "] = ",
                                          static_cast<int64_t>(idx[checked]), " is not a row of var (", rows,
                                          " rows)"));
    }
    if (n == 0) return;
    T* var_p = var.flat<T>().data();
    S* m_p = m.flat<S>().data();
    S* v_p = v.flat<S>().data();
    const G* g_p = grad.flat<G>().data();
    const G one_minus_beta1 = G(1) - beta1;
    const G one_minus_beta2 = G(1) - beta2;
    const G neg_step = -step_size;

    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    auto update = [&](int64_t i) {
      const int64_t r = static_cast<int64_t>(idx[i]);
      AdamRow<T, S, G>(var_p + r * dim, m_p + r * dim, v_p + r * dim, g_p + i * dim, dim, beta1, one_minus_beta1,
                       beta2, one_minus_beta2, neg_step, epsilon);
    };
    auto prefetch = [&](int64_t i) {  // rows are scattered over the table: ask for them ahead
      const int64_t r = static_cast<int64_t>(idx[i]);
      __builtin_prefetch(var_p + r * dim, 1);
      __builtin_prefetch(m_p + r * dim, 1);
      __builtin_prefetch(v_p + r * dim, 1);
    };
    constexpr int64_t kAhead = 32;
    // position(k): the k-th position of `indices` to apply (a range, or a shard's list)
    auto run_in_order = [&](auto position, int64_t count) {
      for (int64_t k = 0; k < std::min(count, kAhead); ++k) prefetch(position(k));
      for (int64_t k = 0; k < count; ++k) {
        if (k + kAhead < count) prefetch(position(k + kAhead));
        update(position(k));
      }
    };
    if (!repeats) {  // distinct rows (the usual case): any split of the positions gives the same numbers
      Shard(workers->num_threads, workers->workers, n, /*cost_per_unit=*/dim * 24, [&](int64_t first, int64_t last) {
        run_in_order([first](int64_t k) { return first + k; }, last - first);
      });
      return;
    }
    // a repeated row is updated once per occurrence, in order: each shard owns the rows r % shards == s
    const int64_t shards = std::max<int64_t>(1, std::min<int64_t>(workers->num_threads, n * dim / 16384));
    auto work = [&](int64_t first, int64_t last) {
      std::vector<int64_t> mine;
      for (int64_t s = first; s < last; ++s) {
        mine.clear();
        for (int64_t i = 0; i < n; ++i) {
          if (shards == 1 || static_cast<int64_t>(idx[i]) % shards == s) mine.push_back(i);
        }
        run_in_order([&mine](int64_t k) { return mine[k]; }, static_cast<int64_t>(mine.size()));
      }
    };
    Shard(workers->num_threads, workers->workers, shards, /*cost_per_unit=*/1 << 30, work);
  }

 private:
  bool use_locking_;
  mutex seen_mu_;
  std::vector<uint64_t> seen_ TF_GUARDED_BY(seen_mu_);  // one bit a row, all zero between calls
};

#define REGISTER(T, S, G, I)                                                                           \
  REGISTER_KERNEL_BUILDER(Name("MxrecSparseLazyAdam")                                                  \
                              .Device(DEVICE_CPU)                                                      \
                              .TypeConstraint<T>("T")                                                  \
                              .TypeConstraint<S>("Tslot")                                              \
                              .TypeConstraint<G>("Tgrad")                                              \
                              .TypeConstraint<I>("Tindices"),                                          \
                          SparseLazyAdamOp<T, S, G, I>);
#define REGISTER_INDICES(T, S, G) REGISTER(T, S, G, int32) REGISTER(T, S, G, int64_t)
#define REGISTER_SLOTS(T) \
  REGISTER_INDICES(T, float, float) REGISTER_INDICES(T, Eigen::half, float) REGISTER_INDICES(T, bfloat16, float)
REGISTER_INDICES(double, double, double)
REGISTER_SLOTS(float)
REGISTER_SLOTS(Eigen::half)
REGISTER_SLOTS(bfloat16)
#undef REGISTER_SLOTS
#undef REGISTER_INDICES
#undef REGISTER

}  // namespace
}  // namespace tensorflow
