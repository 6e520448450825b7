//! Where each parameter of a module sits: its dot-separated field path (for every zoo model,
//! torchvision's state-dict key up to the documented renames), id, size and whether it trains.

use burn::module::{Flag, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// One parameter of a module: its path, id, element count, and whether it is a flag (a
/// module's training switch) rather than a tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamEntry {
    /// Dot-separated field path.
    pub path: String,
    /// burn's id of the parameter.
    pub id: ParamId,
    /// Number of values (0 for flags).
    pub numel: usize,
    /// Shape (empty for flags).
    pub shape: Vec<usize>,
    /// Whether it is a training flag (batch norm's), not a tensor.
    pub flag: bool,
    /// Whether it receives gradients.
    pub trainable: bool,
}

/// Every parameter of `module` with its path, in visit order.
pub fn param_entries<M: Module>(module: &M) -> Vec<ParamEntry> {
    #[derive(Default)]
    struct Paths {
        stack: Vec<String>,
        out: Vec<ParamEntry>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.push(ParamEntry {
                path: self.stack.join("."),
                id: param.id,
                numel: param.lazy_shape().num_elements(),
                shape: param.lazy_shape().dims::<D>().to_vec(),
                flag: false,
                // Asking an uninitialised parameter would initialise it (drawing from the
                // generator): lazy parameters are trainable until frozen.
                trainable: !param.is_initialized() || param.is_require_grad(),
            });
        }
        fn visit_flag(&mut self, flag: &Param<Flag>) {
            self.out.push(ParamEntry {
                path: self.stack.join("."),
                id: flag.id,
                numel: 0,
                shape: Vec::new(),
                flag: true,
                trainable: flag.is_enabled(),
            });
        }
    }
    let mut v = Paths::default();
    module.visit(&mut v);
    v.out
}
