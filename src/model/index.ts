export { createHead, parameterShapes, type Batch, type Head, type HeadGradients, type HeadSettings, type HeadTrainingState, type NamedTensor } from './head.js';
export { BACKEND_SETTINGS, selectBackend, type BackendName, type BackendSetting, type SelectedBackend, type Tf } from './backend.js';
export type { ActivationLayout, GruForwardResult, GruGradients, GruKernel, GruLayerKernel, GruLayerShape, GruShape, GruWeights, LayerActivations } from './kernel.js';
export { directionLayers } from './direction-layers.js';
export { createTfjsGruKernel, TFJS_KERNEL_NAME } from './tfjs-kernel.js';
export { createOrtGruKernel, ORT_KERNEL_NAME } from './ort-kernel.js';
