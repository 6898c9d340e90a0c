/* sample_file.c -- reads a sample description (JSON, see sim/sample_default.json) into a simscope_sample.
 * Every feature is checked (known kind, positive sizes, finite numbers) so a typo in a description is a
 * clear message at start-up, not a silently empty image. */
#include "drivers/simscope/simscope.h"

#include "core/base/base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Number member `key` of obj, or `fallback` when absent; -1 when present but not a finite number. */
static int number(const cJSON *obj, const char *key, double fallback, double *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) {
        *out = fallback;
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) return -1;
    *out = item->valuedouble;
    return 0;
}

static const struct { const char *name; simscope_feature_kind kind; } kinds[] = {
    {"particle", FEATURE_PARTICLE}, {"square", FEATURE_SQUARE}, {"L", FEATURE_L}, {"edge", FEATURE_EDGE},
};

static int parse_feature(const cJSON *item, int index, simscope_feature *f, const char *path, char *err,
                         size_t errlen)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");
    const char *type_name = cJSON_IsString(type) ? type->valuestring : "particle";
    size_t k;
    for (k = 0; k < sizeof kinds / sizeof kinds[0] && strcmp(kinds[k].name, type_name) != 0; k++) {}
    if (k == sizeof kinds / sizeof kinds[0]) {
        error_set(err, errlen, "%s: feature %d: unknown type \"%s\" (particle, square, L, edge)", path, index, type_name);
        return -1;
    }
    memset(f, 0, sizeof *f);
    f->kind = kinds[k].kind;
    double id, removed;
    if (!cJSON_IsObject(item) || number(item, "x", NAN, &f->x) || number(item, "y", NAN, &f->y) ||
        number(item, "size", 1.0, &f->size) || number(item, "width", f->size / 4, &f->width) ||
        number(item, "angle_deg", 0, &f->angle_deg) || number(item, "contrast", 0.5, &f->contrast) ||
        number(item, "id", index, &id) || number(item, "removed", 0, &removed) || isnan(f->x) || isnan(f->y)) {
        error_set(err, errlen, "%s: feature %d: x and y are required numbers; size, width, angle_deg, contrast, id "
             "must be numbers", path, index);
        return -1;
    }
    if ((f->kind != FEATURE_EDGE && f->size <= 0) || (f->kind == FEATURE_L && f->width <= 0) || f->contrast < -1) {
        error_set(err, errlen, "%s: feature %d: size and width must be positive and contrast >= -1", path, index);
        return -1;
    }
    f->id = (int)id;
    f->removed = removed != 0;
    return 0;
}

simscope_sample *simscope_load(const char *path, char *err, size_t errlen)
{
    char *text = file_read_all(path, 64u << 20, NULL, err, errlen);   /* larger is not a sample description */
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        error_set(err, errlen, "%s: not a valid JSON object", path);
        cJSON_Delete(root);
        return NULL;
    }
    simscope_sample *s = xcalloc(1, sizeof *s);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    str_copy(s->name, cJSON_IsString(name) ? name->valuestring : "sample", sizeof s->name);
    const cJSON *mount = cJSON_GetObjectItemCaseSensitive(root, "mount");
    const cJSON *features = cJSON_GetObjectItemCaseSensitive(root, "features");
    int bad = number(root, "background", 1000, &s->background) || number(root, "psf_sigma", 0.5, &s->psf_sigma) ||
              number(mount, "x", 0, &s->mount_x) || number(mount, "y", 0, &s->mount_y) ||
              number(mount, "rotation_deg", 0, &s->mount_rotation_deg);
    if (bad || s->background <= 0 || s->psf_sigma <= 0) {
        error_set(err, errlen, "%s: background and psf_sigma must be positive numbers, mount x/y/rotation_deg numbers", path);
    } else if (!cJSON_IsArray(features)) {
        error_set(err, errlen, "%s: \"features\" must be an array", path);
        bad = 1;
    } else {
        s->nfeatures = cJSON_GetArraySize(features);
        s->features = xcalloc((size_t)s->nfeatures, sizeof *s->features);
        int index = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, features) {
            if (parse_feature(item, index, &s->features[index], path, err, errlen) != 0) {
                bad = 1;
                break;
            }
            index++;
        }
    }
    cJSON_Delete(root);
    if (bad || s->background <= 0 || s->psf_sigma <= 0) {
        simscope_free(s);
        return NULL;
    }
    return s;
}

void simscope_free(simscope_sample *sample)
{
    if (!sample) return;
    free(sample->features);
    free(sample);
}
