"""Segmenter's mask-transformer head and DPT's head: hand-computed expectations (the masks are LayerNorm-ed
cosine similarities, the fusion's output sizes, the class-token readouts), the classifier reset and refusals.
Logit parity with the reference is tests/test_parity.py's segmenter_vit_t_mask / dpt_vit_b16 and
tests/test_inference.py's slide_segmenter_vit_t_mask."""
import pytest
import torch
import torch.nn.functional as F

from sszoo.models.heads import DPTHead, SegmenterMaskTransformerHead

torch.set_num_threads(1)


def _randomise(module: torch.nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.3)


def test_segmenter_masks_are_layer_normed_cosine_similarities():
    # without decoder layers the head is: tokens -> dec_proj, [tokens; cls_emb] -> decoder_norm, then
    # LN_classes(cos(patch_proj(patch), classes_proj(class))) per pixel and class
    head = SegmenterMaskTransformerHead(6, 8, 3, num_layers=0, num_heads=2).double().eval()
    _randomise(head)
    x = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        out = head([x])
        tokens = head.decoder_norm(torch.cat((head.dec_proj(x.flatten(2).transpose(1, 2)),
                                              head.cls_emb.expand(2, -1, -1)), 1))
        p, c = head.patch_proj(tokens[:, :15]), head.classes_proj(tokens[:, 15:])
        cos = F.cosine_similarity(p.unsqueeze(2), c.unsqueeze(1), dim=-1)  # 2 x 15 x 3
        expected = F.layer_norm(cos, (3,), head.mask_norm.weight, head.mask_norm.bias, eps=1e-5)
    assert out.shape == (2, 3, 3, 5)
    assert torch.allclose(out, expected.transpose(1, 2).reshape(2, 3, 3, 5), atol=1e-12)


def test_segmenter_reset_classifier_and_layout():
    head = SegmenterMaskTransformerHead(6, 8, 3, num_layers=2, num_heads=2)
    keys = list(head.state_dict())
    assert keys[0] == "cls_emb" and "conv_seg.weight" not in keys
    assert {"mask_norm.weight", "layers.1.attn.attn.in_proj_weight", "layers.1.ffn.layers.0.0.weight"} <= set(keys)
    # the reference's registration order: its own cls_emb first, then layers, dec_proj, the projections, the norms
    names = [n for n, _ in head.named_parameters()]
    assert names[0] == "cls_emb" and names[1].startswith("layers.0.") and names[-1] == "mask_norm.bias"
    head.reset_classifier(7)
    assert head.cls_emb.shape == (1, 7, 8) and head.mask_norm.normalized_shape == (7,)
    assert head.eval()([torch.randn(1, 6, 2, 3)]).shape == (1, 7, 2, 3)


def _dpt(readout: str) -> DPTHead:
    head = DPTHead((16,) * 4, 8, 3, embed_dims=16, post_process_channels=(4, 6, 8, 10), readout_type=readout).eval()
    _randomise(head)
    for m in head.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    return head


def _vit_outputs(h: int, w: int, batch: int = 1) -> list:
    torch.manual_seed(1)
    return [[torch.randn(batch, 16, h, w), torch.randn(batch, 16)] for _ in range(4)]


@pytest.mark.parametrize("grid, size", [((3, 4), (32, 32)), ((4, 4), (32, 32)), ((5, 5), (48, 48)), ((2, 3), (16, 32))])
def test_dpt_output_size_follows_the_coarsest_map(grid, size):
    # reassembled to 4x, 2x, 1x and the stride-2 conv's ceil(n / 2); the fusion doubles the coarsest map 4 times
    # (each finer skip map resized to the running map when they differ), so the logits are 16 x ceil(n / 2)
    head = _dpt("project")
    with torch.no_grad():
        assert head(_vit_outputs(*grid)).shape[2:] == size


def test_dpt_readouts():
    feats = _vit_outputs(3, 4, batch=2)
    ignore, add, project = _dpt("ignore"), _dpt("add"), _dpt("project")
    with torch.no_grad():
        # "add" is "ignore" on maps with the class token added to every patch
        added = [[x + cls[:, :, None, None], cls] for x, cls in feats]
        assert torch.allclose(add(feats), ignore(added), atol=1e-6)
        # the class token matters only with a readout
        other = [[x, torch.zeros_like(cls)] for x, cls in feats]
        assert torch.equal(ignore(feats), ignore(other))
        assert not torch.allclose(project(feats), project(other))
    assert "reassemble_blocks.readout_projects.0.0.weight" in project.state_dict()
    assert not any("readout" in k for k in ignore.state_dict())
    assert not any(k.startswith("fusion_blocks.0.res_conv_unit1") for k in ignore.state_dict())
    assert "fusion_blocks.1.res_conv_unit1.conv1.bn.weight" in ignore.state_dict()
    with pytest.raises(ValueError, match="readout_type"):
        DPTHead((16,) * 4, 8, 3, embed_dims=16, readout_type="mean")


def test_segmenter_class_count_is_read_from_its_class_embeddings():
    # sszoo.hub's class-count logic (create_model(num_classes=...) with a fine-tuned checkpoint): Segmenter's
    # head has no conv_seg; cls_emb (1 x K x D) and mask_norm carry K
    from sszoo.hub.checkpoint import CheckpointError, check_fits, checkpoint_num_classes

    own = {f"decode_head.{k}": v for k, v in SegmenterMaskTransformerHead(6, 8, 150, num_layers=1,
                                                                          num_heads=2).state_dict().items()}
    state = {f"decode_head.{k}": v for k, v in SegmenterMaskTransformerHead(6, 8, 5, num_layers=1,
                                                                            num_heads=2).state_dict().items()}
    assert checkpoint_num_classes(state) == 5
    check_fits(state, own, strict=False)  # another class count is allowed before the model is known
    with pytest.raises(CheckpointError, match="cls_emb"):
        check_fits(state, own, strict=True)
    state["decode_head.cls_emb"] = torch.zeros(1, 5, 9)  # another width is not a class count
    with pytest.raises(CheckpointError, match="cls_emb"):
        check_fits(state, own, strict=False)
