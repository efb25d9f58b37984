//! Hostile WebAssembly built in tests, never committed as binaries. Shared
//! by the end-to-end tests (`common::wasm`) and the runner's unit tests
//! (included there with `#[path]`), so both attack with the same bytes.
#![allow(dead_code)]

/// A component holding only [`bomb_module`]: no `run` export.
pub fn compile_bomb(values: u32) -> Vec<u8> {
    let mut component = wasm_encoder::Component::new();
    component.section(&wasm_encoder::ModuleSection(&bomb_module(values)));
    component.finish()
}

/// A core module whose single function keeps `values` distinct products of
/// its parameter on the operand stack and only then adds them up: small on
/// disk, slow to compile (every value is live at once, so register
/// allocation works over all of them).
pub fn bomb_module(values: u32) -> wasm_encoder::Module {
    use wasm_encoder::{
        CodeSection, Function, FunctionSection, Instruction, Module, TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let mut body = Function::new([]);
    for i in 0..values {
        body.instruction(&Instruction::LocalGet(0));
        body.instruction(&Instruction::I32Const(i as i32 + 3));
        body.instruction(&Instruction::I32Mul);
    }
    for _ in 1..values {
        body.instruction(&Instruction::I32Add);
    }
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = Module::new();
    module.section(&types).section(&funcs).section(&code);
    module
}

/// `component` with `module` appended as one more core module section.
/// wasmtime compiles every module of a component, instantiated or not, so
/// this makes a working plugin carry the cost of compiling `module`.
pub fn with_extra_module(component: &[u8], module: &wasm_encoder::Module) -> Vec<u8> {
    use wasm_encoder::{ComponentSection, ModuleSection};
    let mut out = component.to_vec();
    out.push(ModuleSection(module).id());
    let mut section = Vec::new();
    wasm_encoder::Encode::encode(&ModuleSection(module), &mut section);
    out.extend(section);
    out
}
