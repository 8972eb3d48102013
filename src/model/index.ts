export { createHead, parameterShapes, type Batch, type Head, type HeadGradients, type HeadSettings, type HeadTrainingState, type NamedTensor } from './head.js';
export { BACKEND_SETTINGS, resolveBackend, selectBackend, selectTfjsBackend, type BackendName, type BackendSetting, type OrtEngine, type SelectedBackend, type Tf, type TfjsBackendName, type TfjsEngine } from './backend.js';
export type { ActivationLayout, GruForwardResult, GruGradients, GruKernel, GruLayerKernel, GruLayerShape, GruShape, GruWeights, LayerActivations } from './kernel.js';
export { directionLayers } from './direction-layers.js';
export { createTfjsGruKernel, TFJS_KERNEL_NAME } from './tfjs-kernel.js';
export { createOrtGruKernel, ORT_KERNEL_NAME } from './ort-kernel.js';
